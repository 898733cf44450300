"""What every service shares: states, Redis key names, redaction. No I/O lives here."""
