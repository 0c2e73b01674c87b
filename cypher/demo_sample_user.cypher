// The demo's sample user: one with a persona and a sizeable history (deterministic).
MATCH (u:User)-[:INTERACTED]->(i:Item)
WHERE u.persona IS NOT NULL
WITH u, count(i) AS n
WHERE n >= 20
RETURN u.id AS user
ORDER BY n ASC, user
LIMIT 1
