"""Access administration: the service layer for roles, users (with tokens) and ring groups.

The API handlers (controller/api/{roles,users,ring_groups}.py) and the CLI call these functions;
they validate (errors name the field), apply each change in one transaction, and write the audit
log with who, when, the old and the new value, in that same transaction.
"""
