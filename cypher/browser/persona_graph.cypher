// Persona graph: one persona group drawn as a graph. What an analyst sees (with kgrec.grass): the
// group as a large purple node captioned with its label, its six most typical members (blue,
// highest HAS_PERSONA weight, the cosine of the member's persona to the group's centre, on the
// edge), the eight items most over-represented among its members (orange, lift over all users,
// at least 2 members), which of those items the sampled members had, and the features of those
// items other than years (light blue). Switch the frame to Table for the lift of each item.
// Neo4j Browser:  :param persona => 'p0'
MATCH (everyone:User)
WITH count(everyone) AS n_users
MATCH (p:Persona {id: $persona})<-[:HAS_PERSONA]-(u:User)-[:INTERACTED]->(i:Item)
WITH p, n_users, i, count(DISTINCT u) AS in_group
WHERE in_group >= 2
MATCH (i)<-[:INTERACTED]-(fan:User)
WITH p, n_users, i, in_group, count(DISTINCT fan) AS overall
WITH p, i, (toFloat(in_group) / p.size) / (toFloat(overall) / n_users) AS lift, in_group
ORDER BY lift DESC, in_group DESC
LIMIT 8
WITH p, collect(i) AS items
MATCH (p)<-[hp:HAS_PERSONA]-(m:User)
WITH p, items, hp, m
ORDER BY hp.weight DESC, m.id
LIMIT 6
WITH p, items, collect(m) AS members, collect(hp) AS memberships
UNWIND items AS i
OPTIONAL MATCH (m:User)-[had:INTERACTED]->(i)
WHERE m IN members
OPTIONAL MATCH (i)-[hf:HAS_FEATURE]->(f:Feature)
WHERE f.kind <> 'year'
RETURN p AS persona, members, memberships, collect(DISTINCT i) AS items,
       collect(DISTINCT had) AS interactions, collect(DISTINCT f) AS features,
       collect(DISTINCT hf) AS item_features
