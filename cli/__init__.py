"""The `ics` command line (installed as the package `ics_cli`)."""
