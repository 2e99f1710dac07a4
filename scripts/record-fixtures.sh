#!/usr/bin/env bash
# Records the committed replay fixtures (bundles/fixtures/) against the provider simulators:
# per bundle, a success, each failure kind the provider documents (triggered by `sim:`
# directives in the input), an empty output, and input refused at submit. Drifted responses
# (extra fields, missing optional fields) are edited copies of the success fixture, made by
# scripts/drift-fixtures.py. Usage: scripts/record-fixtures.sh [MODEL_ID ...]
# Review `git diff bundles/fixtures` before committing: recordings carry fresh ids and times.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --locked -p executor-cli --bin executor
EXE=${CARGO_TARGET_DIR:-target}/debug/executor
DIR=bundles/fixtures

only=("$@")
rec() {
  local model=$1 name=$2 description=$3 input=$4
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $model "* ]]; then return 0; fi
  "$EXE" bundle record "$model" --name "$name" --description "$description" \
    --input "$input" --fixtures "$DIR"
}

# OpenAI (immediate; two 429s: retry vs out of credit)
M=openai/gpt-image-1
rec $M success "an image with token usage" '{"prompt":"a lighthouse at dawn","size":"1024x1024"}'
rec $M rate-limited-then-success "429 rate_limit_exceeded, retried by the lifecycle" '{"prompt":"a lighthouse sim:rate_limit=1"}'
rec $M insufficient-quota "429 insufficient_quota: our account, not retried" '{"prompt":"a lighthouse sim:insufficient_quota"}'
rec $M content-policy "400 content_policy_violation" '{"prompt":"a lighthouse sim:content_policy"}'
rec $M server-error "500 on every attempt" '{"prompt":"a lighthouse sim:server_error=9"}'
rec $M bad-input "wrong type: refused at submit, the provider never called" '{"prompt":42}'

# Replicate (callback with signed webhooks, safety polls)
M=black-forest-labs/flux-schnell
rec $M success "prediction created, start and completed webhooks" '{"prompt":"a lighthouse at dawn"}'
rec $M early-output "processing with output already present, then succeeded" '{"prompt":"a lighthouse sim:early_output"}'
rec $M prediction-failed "prediction failed with an error" '{"prompt":"a lighthouse sim:fail"}'
rec $M content-policy "NSFW refusal" '{"prompt":"a lighthouse sim:content_policy"}'
rec $M invalid-input "422 invalid_fields from Replicate" '{"prompt":"a lighthouse sim:invalid"}'
rec $M empty-output "succeeded with no output: partial_result" '{"prompt":"a lighthouse sim:empty_output"}'
rec $M lost-callback "no webhook arrives: the safety poll finds the result" '{"prompt":"a lighthouse sim:lose_callback"}'
rec $M bad-input "missing required field: refused at submit" '{"aspect_ratio":"1:1"}'

# fal (queue API, Ed25519-signed webhooks)
M=fal-ai/flux-dev
rec $M success "queued, completed, result fetched" '{"prompt":"a lighthouse at dawn"}'
rec $M request-failed "COMPLETED carrying an error: not a success" '{"prompt":"a lighthouse sim:fail"}'
rec $M completed-error-null "COMPLETED with \"error\": null is a success: the result is fetched" '{"prompt":"a lighthouse sim:null_error"}'
rec $M content-policy "content policy refusal" '{"prompt":"a lighthouse sim:content_policy"}'
rec $M invalid-input "422 detail[] from the model" '{"prompt":"a lighthouse sim:invalid"}'
rec $M rate-limited-then-success "429, retried" '{"prompt":"a lighthouse sim:rate_limit=1"}'
rec $M empty-output "no images: partial_result" '{"prompt":"a lighthouse sim:empty_output"}'
rec $M bad-input "out of range: refused at submit" '{"prompt":"x","num_images":99}'

# Runway (polling)
M=runway/gen4-turbo
IMG=https://example.com/first-frame.png
rec $M success "PENDING, RUNNING, SUCCEEDED" "{\"promptImage\":\"$IMG\",\"promptText\":\"waves\"}"
rec $M throttled "THROTTLED is queued, not an error" "{\"promptImage\":\"$IMG\",\"promptText\":\"waves sim:throttled\"}"
rec $M task-failed "FAILED INTERNAL.BAD_OUTPUT" "{\"promptImage\":\"$IMG\",\"promptText\":\"waves sim:fail\"}"
rec $M content-policy "FAILED SAFETY.INPUT.TEXT" "{\"promptImage\":\"$IMG\",\"promptText\":\"waves sim:content_policy\"}"
rec $M invalid-input "400 from Runway naming promptText" "{\"promptImage\":\"$IMG\",\"promptText\":\"waves sim:invalid\"}"
rec $M poll-error-then-success "a 503 on a status call is retried" "{\"promptImage\":\"$IMG\",\"promptText\":\"waves sim:poll_error=1\"}"
rec $M private-url "a first frame on a private address: refused at submit" '{"promptImage":"https://10.0.0.7/frame.png"}'
rec $M metadata-url "the cloud metadata address: refused at submit" '{"promptImage":"https://169.254.169.254/latest/meta-data/"}'

# Stability (immediate, multipart, image bytes)
M=stability-ai/stable-image-core
rec $M success "image bytes, finish-reason SUCCESS" '{"prompt":"a lighthouse at dawn","aspect_ratio":"16:9"}'
rec $M content-filtered "HTTP 200 with finish-reason CONTENT_FILTERED: a failure" '{"prompt":"a lighthouse sim:content_policy"}'
rec $M invalid-input "400 bad_request naming prompt" '{"prompt":"a lighthouse sim:invalid"}'
rec $M out-of-credits "402 payment_required" '{"prompt":"a lighthouse sim:insufficient_quota"}'
rec $M rate-limited "429 rate_limit_exceeded, retried after the lock-out" '{"prompt":"a lighthouse sim:rate_limit=1"}'
rec $M empty-output "HTTP 200 with no image: partial_result" '{"prompt":"a lighthouse sim:empty_output"}'
rec $M bad-input "not an allowed aspect ratio: refused at submit" '{"prompt":"x","aspect_ratio":"7:3"}'

# ElevenLabs (immediate, audio bytes, per character)
M=elevenlabs/eleven-multilingual-v2
rec $M success "audio/mpeg bytes, character-cost header" '{"text":"The first move is what sets everything in motion."}'
rec $M quota-exceeded "401 quota_exceeded: not retried" '{"text":"hello sim:insufficient_quota"}'
rec $M concurrency-limit "429 too_many_concurrent_requests, retried" '{"text":"hello sim:rate_limit=1"}'
rec $M invalid-input "400 invalid_parameters naming text" '{"text":"hello sim:invalid"}'
rec $M content-policy "403 content_against_policy" '{"text":"hello sim:content_policy"}'
rec $M empty-output "HTTP 200 with no audio: partial_result" '{"text":"hello sim:empty_output"}'
rec $M bad-input "voice id with a slash: refused at submit" '{"text":"hello","voice_id":"../admin"}'

# Luma (callback, unsigned: every callback confirmed by a read)
M=luma/ray-2
rec $M success "queued, dreaming, completed; callbacks confirmed by GET" '{"prompt":"a lighthouse at dawn","duration":"5s"}'
rec $M generation-failed "state failed with a failure_reason" '{"prompt":"a lighthouse sim:fail"}'
rec $M content-policy "failed on moderation" '{"prompt":"a lighthouse sim:content_policy"}'
rec $M lost-callback "no callback: the safety poll finds the result" '{"prompt":"a lighthouse sim:lose_callback"}'
rec $M empty-output "completed without a video: partial_result" '{"prompt":"a lighthouse sim:empty_output"}'
rec $M private-url "a start image on loopback: refused at submit" '{"prompt":"x","start_image":"http://localhost.:8080/x.png"}'

# MiniMax (polling, errors inside HTTP 200, download URL in a second call)
M=minimax/hailuo-02
rec $M success "Queueing, Processing, Success, then files/retrieve" '{"prompt":"a lighthouse at dawn"}'
rec $M rate-limited-then-success "HTTP 200 base_resp 1002, retried" '{"prompt":"a lighthouse sim:rate_limit=1"}'
rec $M insufficient-balance "HTTP 200 base_resp 1008: our account" '{"prompt":"a lighthouse sim:insufficient_quota"}'
rec $M sensitive-input "HTTP 200 base_resp 1026" '{"prompt":"a lighthouse sim:content_policy"}'
rec $M task-failed "task Fail" '{"prompt":"a lighthouse sim:fail"}'
rec $M empty-output "Success without file_id: partial_result" '{"prompt":"a lighthouse sim:empty_output"}'
rec $M private-url "a first frame on a link-local address: refused at submit" '{"prompt":"x","first_frame_image":"http://169.254.169.254/x.png"}'
