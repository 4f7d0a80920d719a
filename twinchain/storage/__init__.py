"""Storage: the LevelDB key-value store, its columns, the block store, the state trie and
read proofs."""
