# tpm2-tools talk to the VM's TPM 2.0 (tpm-crb, swtpm behind it on the hypervisor) through the
# kernel's resource manager, unless told otherwise.
export TPM2TOOLS_TCTI="${TPM2TOOLS_TCTI:-device:/dev/tpmrm0}"
