"""The command-line face: `selfheal …` (Typer + Rich)."""
