"""``python -m keras_pose.cli``: the same as the ``keras-pose`` command."""

import sys

from keras_pose.cli import main

sys.exit(main())
