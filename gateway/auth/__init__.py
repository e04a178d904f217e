"""Accounts and access: users with roles, console sessions and API tokens (``service``),
who may do what (``roles``), where (``scope``, through the grid), object-level checks as
FastAPI dependencies (``guards``), and the login/token/user routes (``routes``).

Import from the submodules; this package imports nothing so ``gateway.api.deps`` can use
``gateway.auth.principal`` without cycles.
"""
