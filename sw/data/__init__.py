"""Data: SHD HDF5 loader (shd), Lauscher cochlea (cochlea), offline SHD generator (generate)."""
