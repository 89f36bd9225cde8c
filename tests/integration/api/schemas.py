"""Checking an answer against a component schema of the OpenAPI document the API serves."""

from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_URI = "urn:mail-service:openapi"


def validator(spec, name):
    """An OpenAPI 3.0 validator of the component schema ``name``, resolving ``$ref``s in spec."""
    registry = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT4)
    )
    return OAS30Validator(
        {"$ref": f"{SPEC_URI}#/components/schemas/{name}"},
        registry=registry,
        format_checker=oas30_format_checker,
    )


def assert_matches(spec, name, body):
    """``body`` validates against the schema ``name``, with no key the schema does not list."""
    errors = [
        f"{list(error.absolute_path)}: {error.message}"
        for error in validator(spec, name).iter_errors(body)
    ]
    assert errors == [], errors
    assert set(body) == set(spec["components"]["schemas"][name]["properties"])
