# Inputs of the gatrec deployment. None of them is a secret: the database password and the webhook
# secret are generated here (random_password) and kept in Secret Manager.

variable "project_id" {
  description = "GCP project that holds every gatrec resource."
  type        = string
}

variable "region" {
  description = "Region of every regional resource (buckets, registry, Cloud SQL, Cloud Run, secrets' replicas). gatrec's --region must match."
  type        = string
  default     = "us-central1"
}

variable "github_owner" {
  description = "GitHub owner (user or organisation) of the repository whose main-branch workflows may push images through Workload Identity Federation."
  type        = string
}

variable "github_repo" {
  description = "GitHub repository name (without the owner) whose main-branch workflows may push images."
  type        = string
}

variable "mlflow_image" {
  description = "Container image of the MLflow tracking server (docker/mlflow.Dockerfile), e.g. REGION-docker.pkg.dev/PROJECT/gatrec/mlflow:3.17.2."
  type        = string
}

variable "bento_image" {
  description = "First image of the Bento service; later revisions come from `gatrec cloud deploy`, which Terraform leaves alone. The default is Google's placeholder, for a project without a champion yet."
  type        = string
  default     = "us-docker.pkg.dev/cloudrun/container/hello"
}

variable "allow_unauthenticated_bento" {
  description = "Let anyone call the Bento service (grants allUsers roles/run.invoker). Off: callers need an identity token."
  type        = bool
  default     = false
}

variable "mlflow_invokers" {
  description = "Principals (user:…, group:…) allowed to open the MLflow UI and API, besides the training and CI service accounts."
  type        = list(string)
  default     = []
}

variable "bento_invokers" {
  description = "Principals allowed to call the private Bento service (e.g. serviceAccount:frontend@…)."
  type        = list(string)
  default     = []
}

variable "db_tier" {
  description = "Cloud SQL machine tier of the PostgreSQL instance (MLflow backend store and Optuna storage)."
  type        = string
  default     = "db-custom-1-3840"
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the database and buckets holding data (turn off only to tear down a test project)."
  type        = bool
  default     = true
}

variable "artifact_noncurrent_days" {
  description = "Days a replaced or deleted object version stays recoverable in the buckets."
  type        = number
  default     = 30
}
