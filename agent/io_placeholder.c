/* Placeholder until the serving shell lands. */
int agent_io_placeholder(void);
int agent_io_placeholder(void)
{
	return 0;
}
