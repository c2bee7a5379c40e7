"""OCI images from a static Go binary, pushed by digest through the distribution API.

No Docker, no kaniko, no root: the workflow's image-push task builds the layer, config and
manifest in memory (``oci``), reads credentials from the mounted docker config (``auth``) and
talks to the registry over plain HTTP(S) (``registry``). ``push`` ties them together.
"""

from canaryflow.image.push import PushedImage, PushRequest, push_image

__all__ = ["PushRequest", "PushedImage", "push_image"]
