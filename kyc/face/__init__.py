"""Face verification core: image intake, detection and quality gates, alignment, embedding engines,
1:1 verification with calibrated fusion, 1:N search and liveness.

Modules are imported where used (``kyc.face.pipeline``, ``kyc.face.verify``, ...): importing this
package loads no model and no native library, so the web process stays light and the heavy work
happens in the CPU process pool.
"""
