"""The Hydra config folder ics composes from (installed as the package ics.configs; see the README's
"Configuration" and "Your own configs")."""
