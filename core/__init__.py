"""The ground floor: the one typed settings object and the process lock, imported by every layer above."""
