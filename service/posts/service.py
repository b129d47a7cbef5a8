"""Post logic for every front door: the shared CRUD rules (`crud.Crud`) over the posts table."""

from __future__ import annotations

from service.crud import Crud
from service.posts import queries
from service.posts.schemas import Post

posts = Crud(queries.TABLE, Post, "post", insert=queries.INSERT, update=queries.UPDATE)
