#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), cloudify_osb::lambda::Error> {
    cloudify_osb::lambda::serve::<true, true>(&[cloudify_osb::http::Route::GetBinding]).await
}
