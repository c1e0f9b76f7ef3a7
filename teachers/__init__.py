"""Teacher backends: graders that score finished stories on the rubric's dimensions.

Each module holds one teacher. Importing this package imports none of them, so a
backend's optional dependencies load only when that backend is used.
"""
