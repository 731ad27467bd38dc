"""CodeCarbon: emissions.csv."""
