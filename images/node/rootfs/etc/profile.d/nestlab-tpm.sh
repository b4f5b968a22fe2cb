# tpm2-tools talk to the node's swtpm (nestlab-swtpm.service) unless told otherwise.
export TPM2TOOLS_TCTI="${TPM2TOOLS_TCTI:-swtpm:host=127.0.0.1,port=2321}"
