-- identity_rules: how each identifier type is treated by resolve_identities.
-- Edit a row and run again: the rules apply to all history.
--
--   priority         1 is strongest. Links are applied strongest first; when a
--                    limit would be broken, the weaker (then later) link is
--                    the one dropped, never the whole profile.
--   max_per_profile  at most this many values of the type in one profile.
--   max_per_window   at most this many values first seen within any
--   window_days      window of this many days.
--   max_links        an identifier linked to more distinct identifiers than
--                    this is a super-connector (kiosk device, team@ inbox)
--                    and is quarantined.
--   blocked_values   comma-separated values that are never identifiers
--                    (compared case-insensitively after trimming).
--   blocked_pattern  a regular expression for the same.
-- Types not listed get priority 100, no limits, and the built-in junk list.
SELECT * FROM (VALUES
    ('user_id',        1, 1,    CAST(NULL AS INT), CAST(NULL AS INT), CAST(NULL AS INT),
        'null,undefined,none,nil,0,-1,anonymous,guest,unknown,test', '^[0-]*$'),
    ('email',          2, 5,    NULL, NULL, 50,
        'test@test.com,test@example.com,noemail@noemail.com,no@email.com,none@none.com', '^(noreply|no-reply|donotreply)@'),
    ('phone',          3, 3,    NULL, NULL, 50, '+10000000000,+11111111111,+11234567890', NULL),
    ('crm_contact_id', 4, NULL, NULL, NULL, NULL, NULL, '^[0-]*$'),
    ('device_id',      5, NULL, NULL, NULL, 50,
        'null,undefined,0,unknown', '^[0-]*$|^(00000000-0000-0000-0000-000000000000)$'),
    ('anonymous_id',   6, NULL, 20,   7,    50,
        'null,undefined,none,0,-1,anonymous,unknown', '^[0-]*$')
) AS rules(id_type, priority, max_per_profile, max_per_window, window_days, max_links, blocked_values, blocked_pattern)
