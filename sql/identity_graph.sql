-- identity_graph: every identifier with its profile, and every rejection
-- (junk values, shared devices, links that would merge two user ids), and
-- every link applied, with its evidence row (status 'link').
SELECT * FROM resolve_identities('identifiers', 'identity_rules')
