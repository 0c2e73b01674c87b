MATCH ()-[r:{{rel_type}}]->()
WHERE r.{{prop}} = $value
DELETE r
