-- identity_graph: every identifier with its profile, and every rejection
-- (junk values, shared devices, links that would merge two user ids), and
-- every link applied, with its evidence row (status 'link'), and every change
-- of a profile id (status 'redirect'). Naming itself as the third argument,
-- it reads its previous version, so profile ids survive reruns.
SELECT * FROM resolve_identities('identifiers', 'identity_rules', 'identity_graph')
