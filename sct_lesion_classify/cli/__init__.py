"""Thin command modules: each has ``get_parser()`` and ``main(argv) -> int`` (SPEC section 2)."""
