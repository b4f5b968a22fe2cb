"""The one edit nestlab makes to the domain XML pulumi-libvirt generates: the cloud-init CD on SATA.

The provider attaches the CloudInitDisk as an IDE CD-ROM, and q35 (the machine OVMF and the CRB TPM
want) has no IDE controller, so libvirt refuses the domain ("IDE controllers are unsupported for
this QEMU binary or machine type"; terraform-provider-libvirt issues #667, #885). The provider's own
escape hatch is an XSLT it runs with ``xsltproc`` before defining the domain; this one moves every
CD-ROM onto the SATA bus and copies everything else unchanged.
"""

from __future__ import annotations

CDROM_ON_SATA = """\
<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output omit-xml-declaration="yes" indent="yes"/>
  <!-- identity: copy every node and attribute as it is -->
  <xsl:template match="node()|@*">
    <xsl:copy>
      <xsl:apply-templates select="node()|@*"/>
    </xsl:copy>
  </xsl:template>
  <!-- except the bus of CD-ROM targets: q35 has SATA (AHCI), not IDE -->
  <xsl:template match="/domain/devices/disk[@device='cdrom']/target/@bus">
    <xsl:attribute name="bus">sata</xsl:attribute>
  </xsl:template>
</xsl:stylesheet>
"""
