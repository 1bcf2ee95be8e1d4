"""Hospital PACS round trip over DICOMweb: find a study (QIDO-RS), fetch it (WADO-RS), store results (STOW-RS)."""
