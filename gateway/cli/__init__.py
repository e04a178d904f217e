"""The ``lianfang`` command line."""
