"""From a trained QONNX model to verified HLS (DESIGN.md section 6).

Public entry points (import the modules; this package imports nothing heavy):

- ``lower.lower(model, design=None, board=None, target_fps=None, max_util=0.85) -> Lowered``: the folded
  hardware graph and the Design it follows; ``lower.lower_model(model) -> nx.DiGraph``: unfolded.
- ``reference.run(graph, codes)``, ``reference.input_codes(graph, x)``, ``reference.logits(graph, out)``:
  the integer reference executor.
- ``emit.emit(qonnx, out_dir, *, design=None, board=None, test_data=None, samples=None, ...) -> EmitResult``:
  the HLS project, test vectors and reference outputs.
- ``csim.verify(project, samples=None) -> VerifyResult``: g++ C-simulation, compared bit for bit.

Each hardware op (``ops/``, one module per kind) owns its reference execution, its folding and its HLS
template; ``graph`` re-exports the ops and the DAG helpers of ``dag``.
"""
