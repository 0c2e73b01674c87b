// Node counts per label (multi-label nodes count once per label).
MATCH (n)
UNWIND labels(n) AS label
RETURN label, count(*) AS n
