MATCH ()-[r:{{rel_type}}]->()
DELETE r
