/* Placeholder until the module lands. */
int k8s_io_placeholder(void);
int k8s_io_placeholder(void)
{
	return 0;
}
