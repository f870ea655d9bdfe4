"""The Hydra config folder ics composes from (installed as the package ics.configs; see configs/README.md)."""
