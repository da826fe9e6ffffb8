"""The studies: Jain & Wallace (``jain_wallace``) and Wiegreffe & Pinter (``wiegreffe_pinter``)."""
