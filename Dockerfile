# SAM3 text-prompted segmentation worker for Runpod serverless (TypeScript on Node 20, ONNX Runtime
# with the CUDA 12 execution provider).
#
#   docker build -t sam3-worker .                                        # fp16 weights (default)
#   docker build --build-arg SAM3_MODEL_VARIANT=fp32 -t sam3-worker:fp32 .
#   docker run --rm --gpus all sam3-worker                               # runs ./test_input.json once:
#                                                                        # one JSON document on stdout
#   docker run --rm --gpus all -p 8000:8000 sam3-worker \
#     node dist/handler/main.js --rp_serve_api --rp_api_host 0.0.0.0 --rp_api_port 8000
#
# Stages: build (npm ci, tsc) -> deps (production node_modules with onnxruntime-node's CUDA 12
# libraries) -> model (weights through the project's own models/fetch-model.ts, plus the SAM
# License) -> runtime (NVIDIA CUDA 12 + cuDNN 9 on Ubuntu, non-root).
# The build needs the network: registry.npmjs.org, api.nuget.org (the CUDA execution provider),
# github.com release assets (the weights) and raw.githubusercontent.com (the licence).

# Node for the build stages; the runtime stage takes the node binary from here.
ARG NODE_IMAGE=node:20-bookworm-slim
# onnxruntime-node 1.27.0's CUDA libraries (NuGet Microsoft.ML.OnnxRuntime.Gpu.Linux 1.27.0) are built
# for CUDA 12.x and cuDNN 9.x: ONNX Runtime's CUDA 12 builds work with any CUDA 12.x runtime (minor
# version compatibility), and builds for cuDNN 9 do not load cuDNN 8. 12.8 is a recent CUDA 12 with
# cuDNN 9 in Ubuntu 24.04 (glibc 2.39). Hosts need an NVIDIA driver for CUDA 12 (>= 525; >= 570 for
# 12.8's own features), which .runpod/hub.json's allowedCudaVersions asks for.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
# Which weights to bake in: a variant of models/manifest.json: fp32 (parity baseline, ~3.4 GB),
# fp16 (~1.7 GB), or the quantised q8, int8, q4f16, bnb4 (their remote names are not all confirmed;
# a name that does not exist fails the build with "not found (HTTP 404)").
ARG SAM3_MODEL_VARIANT=fp16

# ---------------------------------------------------------------------------- build
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# .npmrc says onnxruntime-node-install=skip: the compiler needs no CUDA libraries.
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# ---------------------------------------------------------------------------- deps
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# ONNXRUNTIME_NODE_INSTALL is read before .npmrc's setting: onnxruntime-node's postinstall downloads
# libonnxruntime_providers_cuda.so (and _shared, _tensorrt) from NuGet into its bin folder. A failed
# download fails npm ci; the test makes sure the CUDA provider really arrived.
RUN ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci --omit=dev --no-audit --no-fund \
 && test -s node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so \
 && npm cache clean --force

# ---------------------------------------------------------------------------- model
FROM ${NODE_IMAGE} AS model
WORKDIR /fetch
# Only what dist/models/fetch-model.js loads (undici has no dependencies), so this multi-gigabyte
# layer is fetched again only when the fetch script, the manifest, undici or the variant change.
# package.json: ESM for dist/*.js, and the root from which the script finds models/manifest.json.
RUN echo '{"name":"sam3-model-fetch","private":true,"type":"module"}' > package.json
COPY --from=build /app/node_modules/undici node_modules/undici
COPY --from=build /app/dist/models/fetch-model.js /app/dist/models/contract.js dist/models/
COPY --from=build /app/dist/engine/module-paths.js dist/engine/
COPY models/manifest.json models/manifest.json
ARG SAM3_MODEL_VARIANT
# --allow-unverified: models/manifest.json records no size/sha256 yet (the release publishes no
# checksums). The script prints "UNVERIFIED <file>: sha256=... size=..." for each file and writes
# "verified": false into /models/sam3/model-manifest.json. Once the hashes are recorded in
# models/manifest.json, drop the flag: the fetch then fails on any mismatch (and already does
# for every file whose hash is recorded, flag or not).
RUN node dist/models/fetch-model.js --variant "${SAM3_MODEL_VARIANT}" --dir /models/sam3 --allow-unverified
# The weights are "SAM Materials" under the SAM License, which allows redistribution only with a
# copy of the Agreement (sam3-model.md section 12): ship it next to the models. Pinned to the
# facebookresearch/sam3 commit the docs cite and checked by hash. Without access to GitHub, put the
# licence text in the build context and pass --build-arg SAM_LICENSE_URL=<that file>; do not drop it.
ARG SAM_LICENSE_URL=https://raw.githubusercontent.com/facebookresearch/sam3/99d02f28c8d34610ab35559b72642b01f10fdb1e/LICENSE
ARG SAM_LICENSE_SHA256=4dea99bfaa016e21bc860d73f344236bd1e5c4977d1a9a8fd32f822b500ae1be
ADD ${SAM_LICENSE_URL} /models/sam3/LICENSE
RUN echo "${SAM_LICENSE_SHA256}  /models/sam3/LICENSE" | sha256sum -c - \
 && chmod 0644 /models/sam3/LICENSE \
 && grep -q "SAM License" /models/sam3/LICENSE

# ---------------------------------------------------------------------------- runtime
FROM ${CUDA_IMAGE} AS runtime
ARG SAM3_MODEL_VARIANT
LABEL org.opencontainers.image.title="sam3-worker" \
      org.opencontainers.image.description="SAM3 text-prompted segmentation worker for Runpod serverless (onnxruntime-node, CUDA 12)" \
      sam3.model.variant="${SAM3_MODEL_VARIANT}" \
      sam3.model.license="SAM License, see /models/sam3/LICENSE"

# The official Node binary (the node image unpacks the nodejs.org linux-x64 build, which needs
# glibc >= 2.28 and the system libstdc++; Ubuntu 24.04 has glibc 2.39, newer than bookworm's 2.36).
# Only node itself: nothing runs npm at run time. The version check fails the build here, not at
# the first job, if the binary cannot run on this base.
COPY --from=build /usr/local/bin/node /usr/local/bin/node
# A font for the overlay's legend (return_overlay, sam3-segment): librsvg draws its text with fontconfig.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core fontconfig \
 && rm -rf /var/lib/apt/lists/* \
 && node --version \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/sam3 --shell /usr/sbin/nologin sam3

# SAM3_MODEL_DIR: the weights baked in by the model stage. SAM3_DEVICE stays "auto" (CUDA, else CPU
# with a warning); set SAM3_DEVICE=cuda on the endpoint to fail loudly instead of running on CPU.
ENV NODE_ENV=production \
    SAM3_MODEL_DIR=/models/sam3

# Largest and least often changed first. Everything stays root-owned and read-only for the worker.
COPY --from=model /models/sam3 /models/sam3
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# package.json marks dist/*.js as ES modules; test_input.json is the local test event read from the
# working directory by `docker run IMAGE`, as runpod-python images do.
COPY package.json test_input.json ./

USER sam3
# No HEALTHCHECK: the deployed worker is a queue consumer with no port to probe; the platform
# watches the process and its heartbeat. (The optional --rp_serve_api server has GET /v2/<id>/health.)
# Exec form, so node is PID 1 and gets SIGTERM itself (npm start would not forward it); the
# absolute path works whatever directory a harness starts the command in.
CMD ["node", "/app/dist/handler/main.js"]
