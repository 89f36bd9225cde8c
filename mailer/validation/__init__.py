"""What a mail request may hold: addresses, headers, extras and the whole mail, checked without
the database so that the API, the admin and the batch endpoint give the same verdicts."""
