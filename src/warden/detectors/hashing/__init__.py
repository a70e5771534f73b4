"""Hash matching: PDQ (perceptual, with dihedral variants) and MD5 hash banks, an exact
Hamming index, and the `hash_bank` detector. See docs/hashing.md.

Importing this package is cheap: pdqhash, Pillow and faiss load only when used.
"""

from warden.detectors.hashing.banks import Bank, BankEntry, BankFile, BankFormatError, parse_bank_file
from warden.detectors.hashing.index import BruteForceIndex, HammingIndex, MultiIndexHashing, build_index
from warden.detectors.hashing.matcher import BankMatcher, HashDecision, HashMatch, MatcherCache
from warden.detectors.hashing.pdq import DIHEDRAL_VARIANTS, DihedralHashes, ImageError, PdqHash, compute_dihedral

__all__ = [
    "DIHEDRAL_VARIANTS",
    "Bank",
    "BankEntry",
    "BankFile",
    "BankFormatError",
    "BankMatcher",
    "BruteForceIndex",
    "DihedralHashes",
    "HammingIndex",
    "HashDecision",
    "HashMatch",
    "ImageError",
    "MatcherCache",
    "MultiIndexHashing",
    "PdqHash",
    "build_index",
    "compute_dihedral",
    "parse_bank_file",
]
