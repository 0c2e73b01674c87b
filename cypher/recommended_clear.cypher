// Delete one user's RECOMMENDED edges of one run before writing that run's list again.
MATCH (:User {id: $user})-[r:RECOMMENDED]->(:Item)
WHERE r.run = $run
DELETE r
