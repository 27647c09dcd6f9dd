"""gatrec on Google Cloud: settings, Cloud Storage paths, Vertex AI jobs and the Cloud Run deployment.

Only the CLI and the workflow import this package; the pipeline's steps keep taking local paths
(``storage.py`` resolves gs:// URIs at the edges)."""
