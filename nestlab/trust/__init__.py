"""The trust chain: lab keys, signing and verification, measurement into the TPM, attestation."""
