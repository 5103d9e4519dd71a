-- identity_graph: every identifier with its profile, and every rejection
-- (junk values, shared devices, links that would merge two user ids).
SELECT * FROM resolve_identities('identifiers', 'identity_rules')
