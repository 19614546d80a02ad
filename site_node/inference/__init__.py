"""Clinical inference inside the hospital: a site model on an identified study, results as DICOM.

``site-node infer`` reads one study (a folder, or retrieved from the PACS), runs the training
code's own pre-processing and MONAI sliding-window inference (CUDA when present, else CPU), and
writes a DICOM-SEG, a TID 1500 Measurement Report SR and optionally a Secondary Capture overlay.
These carry the patient's own identifiers because they go back to the clinical record; nothing of
it leaves the site, and logs and the ``inference_run`` table hold the study's pseudonym only.

Only :mod:`predict` and :mod:`network` import torch; they are loaded when a command runs.
"""
