// Used by `kgrec explain` to tell an unknown id from a missing explanation.
OPTIONAL MATCH (u:User {id: $user})
OPTIONAL MATCH (i:Item {id: $item})
RETURN u.id AS user, i.id AS item, i.title AS title
