// The width of the item vectors (the first item that has one).
MATCH (i:Item) WHERE i.emb IS NOT NULL
RETURN size(i.emb) AS dim
LIMIT 1
