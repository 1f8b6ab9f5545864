# llm_lib.sh: what the command-line tests of the LLM recommenders share (sourced by test_allmrec.sh
# and test_llmhead.sh; not a test itself).
#
#   llm_setup NAME   sets PY, B (the binary), W (an emptied $DM_TMP/NAME) and OMP_WAIT_POLICY=passive
#   fail MESSAGE     says FAIL: MESSAGE and exits 1
#   llm_small        the settings the tests start from (an array): a small synthetic catalogue,
#                    SASRec, the aligner, the in-suite LM and the prompt's layout; each test adds
#                    its own prompt.*, eval.* and stress.* settings

llm_setup() {
  PY=/usr/bin/python3; B=$DM_BUILD/dynmm
  export OMP_WAIT_POLICY=passive
  W=$DM_TMP/$1; rm -rf "$W"; mkdir -p "$W"
}

fail() { echo "FAIL: $*"; exit 1; }

llm_small=(--set synth.users=400 --set synth.items=200 --set synth.clusters=6
           --set sasrec.epochs=3 --set sasrec.eval_every=3 --set sasrec.hidden=16 --set sasrec.maxlen=20 --set cf.models=[sasrec]
           --set align.epochs=10 --set align.hidden=32 --set align.dim=16 --set align.batch=64
           --set lm.steps=40 --set lm.log_every=20 --set lm.warmup=10 --set lm.vocab=600 --set lm.layers=2 --set lm.width=32
           --set lm.heads=2 --set lm.seq_len=48 --set lm.batch=8
           --set prompt.user_tokens=4 --set prompt.history=3 --set prompt.title_tokens=6 --set prompt.hidden=16)
