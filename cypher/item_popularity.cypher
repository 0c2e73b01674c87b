// Title and training popularity (how many users interacted) of a list of items
// (the top items of each user on `kgrec personas plot --html`).
UNWIND $ids AS iid
MATCH (i:Item {id: iid})
OPTIONAL MATCH (i)<-[:INTERACTED]-(u:User)
RETURN i.id AS item, i.title AS title, count(u) AS users
