output "data_bucket" {
  description = "gs:// URI of the bucket for raw and prepared data (--input, --data)."
  value       = "gs://${google_storage_bucket.buckets["data"].name}"
}

output "artifacts_bucket" {
  description = "gs:// URI of the bucket for run folders, Vertex staging and MLflow artefacts (--staging-bucket)."
  value       = "gs://${google_storage_bucket.buckets["artifacts"].name}"
}

output "registry" {
  description = "Artifact Registry repository images are pushed to (REGION-docker.pkg.dev/PROJECT/gatrec)."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "mlflow_url" {
  description = "URL of the IAM-protected MLflow tracking server: set MLFLOW_TRACKING_URI to it."
  value       = google_cloud_run_v2_service.mlflow.uri
}

output "bento_url" {
  description = "URL of the Bento service (private unless allow_unauthenticated_bento)."
  value       = google_cloud_run_v2_service.bento.uri
}

output "optuna_storage" {
  description = "Optuna storage URL for sweeps on Vertex, without its password (read it from the db-password secret)."
  value       = "postgresql://${google_sql_user.gatrec.name}@${google_sql_database_instance.postgres.private_ip_address}:5432/${google_sql_database.optuna.name}"
}

output "network" {
  description = "VPC network for `gatrec cloud submit --network` (reaches Cloud SQL's private IP)."
  value       = google_compute_network.vpc.id
}

output "service_accounts" {
  description = "Service account e-mails per role: train (Vertex jobs), serve (Bento), mlflow, ci."
  value = {
    train  = google_service_account.train.email
    serve  = google_service_account.serve.email
    mlflow = google_service_account.mlflow.email
    ci     = google_service_account.ci.email
  }
}

output "workload_identity_provider" {
  description = "Workload Identity provider for google-github-actions/auth (repository variable GCP_WIF_PROVIDER)."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "db_password_secret" {
  description = "Secret Manager secret holding the PostgreSQL password."
  value       = google_secret_manager_secret.secrets["db-password"].id
}
