-- The size of a segment (a view over profiles).
SELECT count(*) FROM segments.big_spenders;
