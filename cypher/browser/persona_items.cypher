// Items most over-represented in one persona group: share of the group's members who
// interacted with the item, divided by that share among all users (lift), with minimum support.
// (No variables named `all`/`any`: Neo4j parses count(all) as the ALL quantifier.)
// Neo4j Browser:  :param persona => 'p0'
MATCH (p:Persona {id: $persona})
MATCH (everyone:User)
WITH p, count(everyone) AS n_users
MATCH (p)<-[:HAS_PERSONA]-(u:User)-[:INTERACTED]->(i:Item)
WITH p, n_users, i, count(DISTINCT u) AS in_group
WHERE in_group >= 2
MATCH (i)<-[:INTERACTED]-(member:User)
WITH p, n_users, i, in_group, count(DISTINCT member) AS overall
RETURN i.id AS item, i.title AS title, in_group, overall,
       round(1000.0 * (toFloat(in_group) / p.size) / (toFloat(overall) / n_users)) / 1000.0 AS lift
ORDER BY lift DESC, in_group DESC
LIMIT 25
