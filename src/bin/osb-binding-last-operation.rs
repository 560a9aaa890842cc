#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), cloudify_osb::lambda::Error> {
    cloudify_osb::lambda::serve::<false, false>(&[cloudify_osb::http::Route::BindingLastOperation])
        .await
}
