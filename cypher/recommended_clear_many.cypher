// Delete the RECOMMENDED edges of a batch of (user, run) pairs before writing those lists again.
UNWIND $pairs AS p
MATCH (:User {id: p.user})-[r:RECOMMENDED]->(:Item)
WHERE r.run = p.run
DELETE r
