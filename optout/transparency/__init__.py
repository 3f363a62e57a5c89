"""The transparency log (RFC 9162 Merkle tree, C2SP checkpoints, signed notes and tiles): see README
"Transparency log"."""
