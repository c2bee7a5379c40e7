"""The same bundle for Tekton: Tasks rendered from the Argo task library, a release Pipeline
with its rollback in ``finally``, and Tekton Triggers for Git pushes."""
