"""Who is calling: client registry, OAuth 2.0 token endpoint (authlib), access-token checks.

The only package that imports authlib and joserfc.
"""
